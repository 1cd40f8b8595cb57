"""Everything that leaves the process: metrics, notifications, receivers."""
