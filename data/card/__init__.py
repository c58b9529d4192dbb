"""The bias card: schema, types, and its text and HTML layouts."""
