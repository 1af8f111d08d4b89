"""The appliance layer: image recipe, systemd units, signed updates, watchdog."""
