"""persistence: see the package docs."""
