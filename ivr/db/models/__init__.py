"""The whole domain's tables; importing this module registers them all on ``Base.metadata``."""

from .appeals import Appeal, AppealOutcome, AppealStatus, AppealTopic, AppealViolation
from .calls import (
    Call,
    CallbackAttempt,
    CallbackSource,
    CallbackStatus,
    CallbackWindow,
    CallLeg,
    CallOutcome,
    IvrStep,
    JournalEntry,
    JournalOutcome,
    Quality,
    Rating,
    RatingStatus,
    ReconcileMark,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from .calls import Callback as Callback
from .kb import ArticleKind, KbArticle, KbArticleVersion, KbSection, KbSectionEditor
from .people import (
    Agency,
    Channel,
    Citizen,
    CitizenPhone,
    Department,
    OperatorPhone,
    Role,
    Staff,
)
from .receptions import Booking, BookingStatus, Official, ReceptionSchedule, ReceptionSlot
from .system import (
    ApiToken,
    AuditEntry,
    Notification,
    NotificationStatus,
    PlainLanguageTerm,
    SurveyResponse,
    WebSession,
)

__all__ = [
    "Agency", "ApiToken", "Appeal", "AppealOutcome", "AppealStatus", "AppealTopic",
    "AppealViolation", "ArticleKind",
    "AuditEntry", "Booking", "BookingStatus", "Call", "CallLeg", "CallOutcome", "Callback",
    "CallbackAttempt", "CallbackSource", "CallbackStatus", "CallbackWindow", "Channel",
    "Citizen", "CitizenPhone", "Department", "IvrStep", "JournalEntry", "JournalOutcome",
    "KbArticle", "KbArticleVersion",
    "KbSection", "KbSectionEditor", "Notification", "NotificationStatus", "Official",
    "OperatorPhone",
    "PlainLanguageTerm", "Quality", "Rating", "RatingStatus", "ReceptionSchedule",
    "ReceptionSlot", "ReconcileMark", "Role", "Staff",
    "SurveyResponse", "Transfer", "TransferKind", "TransferOutcome", "WebSession",
]
