"""Call flows, one module per AGI script; agi.routes maps script names to them."""
