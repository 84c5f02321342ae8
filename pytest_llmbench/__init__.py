"""pytest-llmbench: JSON suites of LLM prompts as pytest items against OpenAI-compatible endpoints.

The public API: what hooks receive and what ordinary tests and scripts may use directly.
"""

__version__ = "0.1.0"

from .client import ClientConfig, ClientError, EndpointUnreachable, LLMClient  # noqa: E402
from .controller import LLMBenchWarning  # noqa: E402
from .monitor import Measurement, PerformanceMonitor  # noqa: E402
from .progress import ExecutionProgress  # noqa: E402
from .result import ApiError, Attempt, TestResult  # noqa: E402
from .suite import Suite, SuiteError, TestCase, load_suite  # noqa: E402

__all__ = [
    "ApiError", "Attempt", "ClientConfig", "ClientError", "EndpointUnreachable", "ExecutionProgress", "LLMBenchWarning",
    "LLMClient", "Measurement", "PerformanceMonitor", "Suite", "SuiteError", "TestCase", "TestResult", "__version__", "load_suite",
]
