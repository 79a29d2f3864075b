"""Beam IO shaped like Beam's own: the landing copy, the Proxy Producer zone, Cassandra (the
structured zone) and the Arkea ABS package; each a public PTransform over private DoFns."""
