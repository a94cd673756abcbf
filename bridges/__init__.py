"""bridges: see the package docs."""
