"""Firmware identity of an appliance: model profiles, version, signed manifest, compatibility.

Runs on the appliance (it goes into the image) and on the build host.
"""
