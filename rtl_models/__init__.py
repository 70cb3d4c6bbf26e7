"""rtl_models package of archgym."""
