"""KAP care-pathway pipeline: the importable logic behind `kap` and the DAGs."""
