"""pandera models of the warehouse tables, the GX quality gate and the SQL-check compiler."""
