"""A local Tencent Cloud API 3.0 endpoint (Lighthouse, TDMQ CMQ, SCF functions and Invoke) for development and tests."""

from emulator.core import SECRET_ID, SECRET_KEY, Call, Emulator
from emulator.errors import ApiError
from emulator.state import DEFAULT_UIN, sample_state

__all__ = ["DEFAULT_UIN", "SECRET_ID", "SECRET_KEY", "ApiError", "Call", "Emulator", "sample_state"]
