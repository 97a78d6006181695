"""Reports: FLOPs/params tables that reproduce the seed's, model reports, t-SNE figures."""
