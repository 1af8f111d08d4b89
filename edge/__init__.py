"""The edge box: clerk web UI and API, per-town workers, sync agent, discovery."""
