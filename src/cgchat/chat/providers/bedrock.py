"""Amazon Bedrock (Converse streaming API) behind the LLMProvider interface.

Retry policy, and why it is split in two:

* Errors on the initial HTTP call (429 ThrottlingException, 5xx, connection/read-timeout
  failures) are retried by botocore itself ("adaptive" mode: exponential backoff plus a client-side
  rate limiter). We do not retry them again on top, which would multiply attempts and waits.
* Errors that arrive *inside* the event stream (a ``throttlingException`` event etc.) are invisible
  to botocore's retry logic, because the HTTP response was already a 200. If no text has been
  yielded yet, nobody has seen anything, so we retry the whole request here with backoff + jitter.
  Once text has been yielded we never retry: the caller already showed that text, so we raise
  ``ProviderError(after_tokens=True)`` and let the pipeline decide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.eventstream import ParserError
from botocore.exceptions import BotoCoreError, ClientError, EventStreamError, NoCredentialsError

from cgchat.chat.providers.base import (
    ChatMessage,
    GenerationParams,
    ProviderError,
    ProviderEvent,
    Stop,
    TextDelta,
    Usage,
)
from cgchat.chat.providers.retry import RetryBeforeText, stream_with_retries

DEFAULT_MODEL_ID = "us.meta.llama3-2-11b-instruct-v1:0"

# In-stream exception events (ConverseStreamOutput members) that may succeed on a fresh request.
_RETRYABLE_STREAM_ERRORS = frozenset(
    {
        "throttlingException",
        "modelStreamErrorException",
        "serviceUnavailableException",
        "internalServerException",
    }
)
# Error codes of the initial call for which "try again later" is sound advice.
_RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
    }
)
# Transport failures while reading the stream: urllib3 errors are not wrapped by botocore there.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, BotoCoreError, ParserError, OSError)


class BedrockProvider:
    """Streams chat completions from Bedrock's ConverseStream API (see module docstring)."""

    name = "bedrock"

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL_ID,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        max_attempts: int = 4,
        client: Any = None,
        *,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        read_timeout: float = 120.0,
        connect_timeout: float = 10.0,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.model = model_id
        self.region = region
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._client = client
        self._client_lock = threading.Lock()

    # --- client -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The bedrock-runtime client, built on first use so that constructing a provider (e.g. at
        app start-up, or in tests that never call it) needs no AWS credentials; reused after that
        because clients hold the connection pool and the adaptive rate limiter's state."""
        if self._client is None:
            with self._client_lock:  # streams run in worker threads
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        config = Config(
            # total_max_attempts counts the first try; botocore's plain "max_attempts" key in
            # Config(retries=...) means *retries* and would give max_attempts + 1 requests.
            retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
            read_timeout=self.read_timeout,
            connect_timeout=self.connect_timeout,
        )
        # A private Session: boto3's default session is not thread-safe to create clients from.
        session = boto3.session.Session()
        return session.client(
            "bedrock-runtime", region_name=self.region, endpoint_url=self.endpoint_url, config=config
        )

    # --- streaming --------------------------------------------------------------------------

    def stream(
        self, system: str, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[ProviderEvent]:
        """Yield TextDelta*, then Usage (if Bedrock sent one), then one Stop; or raise ProviderError."""
        request = self._request(system, messages, params)
        return stream_with_retries(
            lambda: self._stream_once(request), max_attempts=self.max_attempts, base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay, who="Bedrock",
        )


    def _request(self, system: str, messages: list[ChatMessage], params: GenerationParams) -> dict[str, Any]:
        inference: dict[str, Any] = {
            "maxTokens": params.max_tokens,
            "temperature": params.temperature,
            "topP": params.top_p,
        }
        if params.stop:  # Bedrock rejects an empty stopSequences list for some models
            inference["stopSequences"] = list(params.stop)
        request: dict[str, Any] = {
            "modelId": self.model,
            "messages": [{"role": m.role, "content": [{"text": m.content}]} for m in messages],
            "inferenceConfig": inference,
        }
        if system:  # an empty text block is a ValidationException
            request["system"] = [{"text": system}]
        return request

    def _stream_once(self, request: dict[str, Any]) -> Iterator[ProviderEvent]:
        """One ConverseStream call. Raises RetryBeforeText when replaying is safe, else ProviderError."""
        stream = self._call(request)
        yielded_text = False
        stop_reason: str | None = None
        usage: Usage | None = None
        try:
            for event in stream:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        yielded_text = True
                        yield TextDelta(text)
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason", "end_turn")
                elif "metadata" in event:
                    usage = _usage(event["metadata"])
        except EventStreamError as exc:
            raise _stream_error(exc, yielded_text) from exc
        except _TRANSPORT_ERRORS as exc:
            if stop_reason is None:  # after messageStop the answer is complete; only usage is lost
                raise _interrupted(exc, yielded_text) from exc
        finally:
            stream.close()  # also when the consumer abandons us: stop paying for tokens nobody reads
        if stop_reason is None:
            raise ProviderError(
                "StreamIncomplete",
                "Bedrock stream ended before the message was complete (connection dropped?)",
                retryable=True,
                after_tokens=yielded_text,
            )
        if usage is not None:
            yield usage
        yield Stop(stop_reason)

    def _call(self, request: dict[str, Any]) -> Any:
        """Open the stream; botocore has already retried what it could when this raises."""
        try:
            return self.client.converse_stream(**request)["stream"]
        except ClientError as exc:
            raise self._call_error(exc) from exc
        except NoCredentialsError as exc:
            raise ProviderError(
                "NoCredentials",
                "No AWS credentials found for Bedrock (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run on a host with an IAM role)",
                retryable=False,
            ) from exc
        except (BotoCoreError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ProviderError(
                "ConnectionError", f"Could not reach Bedrock in {self.region}: {exc}", retryable=True
            ) from exc

    def _call_error(self, exc: ClientError) -> ProviderError:
        """Map an error response of the initial call to a ProviderError with an actionable message."""
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        detail = error.get("Message") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        where = f"{self.model} in {self.region}"
        messages = {
            "AccessDeniedException": f"Bedrock model access not granted for {where} (request access in the "
            "Bedrock console and allow bedrock:InvokeModelWithResponseStream): {detail}",
            "ResourceNotFoundException": f"Bedrock model {where} not found: {detail}",
            "ValidationException": f"Bedrock rejected the request for {self.model}: {detail}",
            "UnrecognizedClientException": f"AWS credentials were rejected by Bedrock: {detail}",
            "ExpiredTokenException": f"AWS credentials have expired: {detail}",
            "ThrottlingException": f"Bedrock is throttling requests for {where}: {detail}",
        }
        message = messages.get(code, f"Bedrock error {code} for {where}: {detail}")
        retryable = code in _RETRYABLE_CALL_ERRORS or status == 429 or status >= 500
        return ProviderError(code, message, retryable=retryable, after_tokens=False)


def _usage(metadata: dict[str, Any]) -> Usage:
    tokens = metadata.get("usage", {})
    return Usage(input_tokens=tokens.get("inputTokens"), output_tokens=tokens.get("outputTokens"))


def _stream_error(exc: EventStreamError, yielded_text: bool) -> Exception:
    """An exception event inside the stream; retry-safe only while nothing has been yielded."""
    error = exc.response.get("Error", {})
    event_code = error.get("Code") or "unknownStreamException"
    code = event_code[:1].upper() + event_code[1:]  # throttlingException -> ThrottlingException
    message = error.get("Message") or str(exc)
    retryable = event_code in _RETRYABLE_STREAM_ERRORS
    if retryable and not yielded_text:
        return RetryBeforeText(code, message)
    stage = "mid-answer" if yielded_text else "before any text"
    return ProviderError(
        code, f"Bedrock stream failed {stage}: {message}", retryable=retryable, after_tokens=yielded_text
    )


def _interrupted(exc: Exception, yielded_text: bool) -> ProviderError:
    """The transport failed mid-stream (dropped connection, read timeout, corrupt frame)."""
    return ProviderError(
        "StreamInterrupted",
        f"Bedrock stream was interrupted: {exc}",
        retryable=True,
        after_tokens=yielded_text,
    )
