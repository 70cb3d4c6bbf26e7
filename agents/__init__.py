"""agents package of archgym."""
