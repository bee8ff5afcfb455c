"""The learning platform: its HTTP client, the simulator that stands in for it, and the demo history."""
