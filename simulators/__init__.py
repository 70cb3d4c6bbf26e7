"""simulators package of archgym."""
