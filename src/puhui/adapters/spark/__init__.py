"""Apache Spark renderings of preparation and settlement, for days one machine cannot settle."""
