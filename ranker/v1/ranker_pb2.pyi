import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_VIEW: _ClassVar[EventType]
    EVENT_TYPE_CLICK: _ClassVar[EventType]
    EVENT_TYPE_FAVORITE: _ClassVar[EventType]
    EVENT_TYPE_ADD_TO_CART: _ClassVar[EventType]
    EVENT_TYPE_PURCHASE: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_VIEW: EventType
EVENT_TYPE_CLICK: EventType
EVENT_TYPE_FAVORITE: EventType
EVENT_TYPE_ADD_TO_CART: EventType
EVENT_TYPE_PURCHASE: EventType

class Item(_message.Message):
    __slots__ = ("item_id", "text")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    text: str
    def __init__(self, item_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class BehaviorEvent(_message.Message):
    __slots__ = ("item", "type", "time")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    item: Item
    type: EventType
    time: _timestamp_pb2.Timestamp
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., type: _Optional[_Union[EventType, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RankRequest(_message.Message):
    __slots__ = ("user_id", "history", "candidates", "top_k", "budget_ms", "policy")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    history: _containers.RepeatedCompositeFieldContainer[BehaviorEvent]
    candidates: _containers.RepeatedCompositeFieldContainer[Item]
    top_k: int
    budget_ms: int
    policy: str
    def __init__(self, user_id: _Optional[str] = ..., history: _Optional[_Iterable[_Union[BehaviorEvent, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., top_k: _Optional[int] = ..., budget_ms: _Optional[int] = ..., policy: _Optional[str] = ...) -> None: ...

class RankedItem(_message.Message):
    __slots__ = ("item_id", "score", "propensity", "explored")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    EXPLORED_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    propensity: float
    explored: bool
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., propensity: _Optional[float] = ..., explored: _Optional[bool] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("event_id", "items", "policy", "model_version", "degraded", "stage_ms")
    class StageMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    STAGE_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    items: _containers.RepeatedCompositeFieldContainer[RankedItem]
    policy: str
    model_version: str
    degraded: _containers.RepeatedScalarFieldContainer[str]
    stage_ms: _containers.ScalarMap[str, float]
    def __init__(self, event_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RankedItem, _Mapping]]] = ..., policy: _Optional[str] = ..., model_version: _Optional[str] = ..., degraded: _Optional[_Iterable[str]] = ..., stage_ms: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("event_id", "item_id", "type", "reward")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    item_id: str
    type: EventType
    reward: float
    def __init__(self, event_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., reward: _Optional[float] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
