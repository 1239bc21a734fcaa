"""The Message Batches API of the simulator: ``envelope`` (what create and list check at once),
``batch`` (one batch's state and its ``MessageBatch`` JSON), ``answer`` (one request's result, as
``POST /v1/messages`` answers it), ``worker`` (a batch's progress over time), ``store`` (batches by
id, ``custom_id``s submitted) and ``routes`` (the HTTP endpoints)."""
