"""Multi-stage pipelines: a task type that runs on another type's succeeded results.

* :mod:`~nightbatch.pipeline.spec`: what a task type declares (``after``, ``when``, ``inputs``, ``rerank``,
  ``dedupe``, ``reuse_responses``);
* :mod:`~nightbatch.pipeline.condition`: the small, safe language of ``when`` (parsed, never evaluated
  as Python);
* :mod:`~nightbatch.pipeline.graph`: the stage graph, with unknown upstream types and cycles refused;
* :mod:`~nightbatch.pipeline.payload`: a downstream payload from the upstream payload and output, and the
  rerank pattern's top-K;
* :mod:`~nightbatch.pipeline.downstream`: what ingest does with a succeeded upstream result: enqueue its
  stage tasks in the same transaction, idempotently, and settle the de-duplicated twins of its requests.

Importing this package imports nothing of the database (task types import the spec and the graph).
"""
