"""Training of the segmentation model (needs torch; never imported by the app)."""
