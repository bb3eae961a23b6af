"""Builds a bootable appliance image per model and flashes it onto a virtual disk (build host only)."""
