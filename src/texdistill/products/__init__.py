"""What users take away from a run: texture previews, print tiles, Wang tiles, garment mock-ups, the report."""
