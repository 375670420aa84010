"""Names shared with config/asterisk/extensions.conf: contexts and channel variables.

Flows use these constants, never string literals, so the dialplan and the code can't drift.
"""

# Set by the server after a flow finished properly; the dialplan treats its absence
# (server dead, refused, killed mid-call) as a failure and goes to FALLBACK_CONTEXT.
FLOW_OK = "HOTLINE_FLOW_OK"
# Where every failure of ours sends the caller: straight to the general queue.
FALLBACK_CONTEXT = "agi-fail"

HOTLINE_ENTRY_CONTEXT = "hotline-in"
TOPIC = "HOTLINE_TOPIC"
QUEUE = "HOTLINE_QUEUE"
IVR_PATH = "HOTLINE_IVR_PATH"
# What the dialplan does after a flow: "queue" (HOTLINE_QUEUE) or "hangup".
NEXT = "HOTLINE_NEXT"
# [hotline-queue]: seconds of the next spell in the queue; "1" once a callback was offered.
QUEUE_WAIT = "HOTLINE_QUEUE_WAIT"
QUEUE_OFFERED = "HOTLINE_QUEUE_OFFERED"

# The transfer gate (R-H4), [hotline-transfer]: operators' channels carry TRANSFER_CONTEXT.
TRANSFER_CONTEXT = "hotline-transfer"
# On an operator's channel (inherited by their consultation calls): the channel itself.
OPERATOR = "HOTLINE_OPERATOR"
# Set on the caller's channel by the panel before a transfer: the whisper's note.
TRANSFER_NOTE = "HOTLINE_TRANSFER_NOTE"
# Set by the gate for the dialplan: whom to dial and what they hear first.
DIAL = "HOTLINE_DIAL"
WHISPER = "HOTLINE_WHISPER"
# [hotline-callback]: the caller ID the citizen's leg presents (Dial's f option): the
# hotline's number, never the citizen's own one (which the employee's channel carries).
CALLER_ID = "HOTLINE_CALLER_ID"

# [hotline-spy] (issue 30): the supervisor's phone listens to, whispers to or barges into
# the operator's channel SPY_TARGET; the extension is the mode (ivr/spy.py MODES).
SPY_CONTEXT = "hotline-spy"
SPY_TARGET = "HOTLINE_SPY_TARGET"
