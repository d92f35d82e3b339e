"""Fleet training: the sky simulator, datasets, models, Ray Train loops, evaluation and export.
Imports `protos` and the site's one frame->tensor preprocessing, so the two can never drift."""
