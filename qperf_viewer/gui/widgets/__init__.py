"""One widget per module; each gets what it shows passed in or reads it from the session."""
