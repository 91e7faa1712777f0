"""Parsl's module path for File: `from livedag.data_provider.files import File`."""
