"""HTTP routes of the recommendation API, one module per resource."""
