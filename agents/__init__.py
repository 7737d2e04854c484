"""chipreg host agent and fleet simulator."""
