"""Read replicas: reads routed to PostgreSQL streaming replicas, read-your-writes by commit
position (docs/replicas.md)."""
