"""An IPython kernel without kernel subshells, as ipykernel 6 and other kernels are: for
the browser test of a click that must wait for a busy cell ("queued: kernel busy").

    python -m tests.browser.no_subshell_kernel -f CONNECTION_FILE

ipykernel 7 advertises `supported_features: ["kernel subshells"]` in its kernel_info reply
when its shell-channel thread exists (`Kernel._supports_kernel_subshells` is
`shell_channel_thread is not None`), and JupyterLab >= 4.4 then sends widget messages on
a subshell. ipykernel handles that thread being None throughout (shell messages then go
straight to the main shell, as in ipykernel 6), so this app drops it once the sockets are
made: Lab sends widget messages on the main shell, behind whatever cell is running.
(ipykernel's path for cells with top-level `await` assumes the thread: don't use one.)
"""

from __future__ import annotations

from typing import Any

from ipykernel.kernelapp import IPKernelApp


class NoSubshellKernelApp(IPKernelApp):
    name = "ipython-kernel-no-subshells"

    def init_sockets(self) -> None:
        super().init_sockets()
        # Made but never started: its subshell manager (and its sockets) is made lazily.
        self.shell_channel_thread: Any = None


if __name__ == "__main__":
    NoSubshellKernelApp.launch_instance()
