"""Files: importing identifiers by the million and exporting them."""
