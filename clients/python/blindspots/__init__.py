"""blindspots SDK: log predictions, diagnose failures, pull the data to label next."""
from ._delete_api import DeleteSummary
from .client import Client, IngestSummary, Pool, Run
from .errors import (BlindspotsError, FailedPreconditionError, InvalidArgumentError, InvalidParameterError,
                     JobFailedError, NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError)
from .results import Diagnosis, write_manifest

__version__ = "0.1.0"
__all__ = ["BlindspotsError", "Client", "DeleteSummary", "Diagnosis", "FailedPreconditionError", "IngestSummary",
           "InvalidArgumentError", "InvalidParameterError", "JobFailedError", "NotFoundError", "PermissionDeniedError", "Pool", "Run",
           "UnauthenticatedError", "UnavailableError", "write_manifest"]
