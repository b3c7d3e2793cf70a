"""labelmap."""
