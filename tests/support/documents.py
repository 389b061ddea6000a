"""The GraphQL documents the test suites send, each written once.

Where the CLI's own document (chatroom/cli/operations/<Name>.graphql) selects what the tests
read, the tests send that document (``tests.support.operations.cli_operation``), so they
exercise what the CLI sends. The others select more than the CLI ever reads (a test checks the
fields a change gave every row), and are written here, one selection per kind of object, so
every suite reads the same fields. Variables keep the short names the suites have always passed
($c a room, $r a role); every mutation takes its one `$input`.
"""

from __future__ import annotations

from tests.support.operations import cli_operation

# --- what every document selects of each kind of object ----------------------------------------

MESSAGE = (
    "id seq senderRole targetRole content type classification effectiveClassification claimedByRole"
)
TASK = (
    "id status content createdBy assignedTo queuePosition attempt startedAt completedAt"
    " originMessage { id } sourceMessage { id }"
)
# Without lastSeenAt: a participant a mutation returns is compared whole ({role, status}).
PARTICIPANT = "role status"
ROOM = (
    "id name status teamId teamRoles entryPoint lastEventSeq"
    " participants { role status lastSeenAt }"
)

# --- the CLI's own documents ------------------------------------------------------------------

CREATE_GUEST = cli_operation("CreateGuestSession")  # $displayName
ME = cli_operation("Me")

# --- rooms ---------------------------------------------------------------------------------------

CREATE_ROOM = (
    f"mutation($input: CreateChatroomInput!) {{ createChatroom(input: $input) {{ {ROOM} }} }}"
)
CHATROOM = f"query($id: ID!) {{ chatroom(id: $id) {{ {ROOM} }} }}"
INTERRUPT = f"mutation($c: ID!) {{ interruptChatroom(chatroomId: $c) {{ {ROOM} }} }}"
COMPLETE_ROOM = f"mutation($c: ID!) {{ completeChatroom(chatroomId: $c) {{ {ROOM} }} }}"
JOIN = (
    "mutation($c: ID!, $r: String!) { joinChatroom(chatroomId: $c, role: $r)"
    f" {{ {PARTICIPANT} }} }}"
)

# --- messages and tasks -------------------------------------------------------------------------

SEND = (
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) {"
    f" message {{ {MESSAGE} }} task {{ {TASK} }} }} }}"
)
CLAIM = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input) {"
    f" success task {{ {TASK} }} message {{ {MESSAGE} }} participant {{ {PARTICIPANT} }} }} }}"
)
HANDOFF = (
    "mutation($input: SendHandoffInput!) { sendHandoff(input: $input) {"
    f" message {{ {MESSAGE} }} completedTasks {{ {TASK} }} newTask {{ {TASK} }}"
    f" promotedTask {{ {TASK} }} sender {{ {PARTICIPANT} }} }} }}"
)
CLASSIFY = (
    "mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) {"
    f" {MESSAGE} follows {{ id }} }} }}"
)


def _task_mutation(field: str, input_type: str) -> str:
    return f"mutation($input: {input_type}!) {{ {field}(input: $input) {{ {TASK} }} }}"


ADD_BACKLOG = _task_mutation("addBacklogTask", "AddBacklogTaskInput")
UPDATE = _task_mutation("updateTask", "UpdateTaskInput")
MOVE = _task_mutation("moveTaskToQueue", "TaskRefInput")
COMPLETE = _task_mutation("completeTask", "CompleteTaskInput")
CANCEL = _task_mutation("cancelTask", "TaskRefInput")
RELEASE = _task_mutation("releaseTask", "TaskRefInput")

TASKS = (
    "query($c: ID!, $s: [TaskStatus!], $limit: Int = 100) {"
    f" tasks(chatroomId: $c, statuses: $s, limit: $limit) {{ {TASK} }} }}"
)
PENDING = f"query($c: ID!, $r: String!) {{ pendingTasks(chatroomId: $c, role: $r) {{ {TASK} }} }}"
COUNTS = (
    "query($c: ID!) { taskCounts(chatroomId: $c) "
    "{ pending inProgress queued backlog completed cancelled } }"
)
MESSAGES = (
    "query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {"
    " messages(chatroomId: $c, first: $first, after: $after, last: $last, before: $before) {"
    f" edges {{ cursor node {{ {MESSAGE} }} }} nodes {{ seq }}"
    " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
)

# --- subscriptions ------------------------------------------------------------------------------

# Each delivery's first read happens at once on many waiters in the fault tests: the fields the
# delivery tests read, and one message link (a link is a lookup of its own).
TASK_AVAILABLE = (
    "subscription($c: ID!, $r: String!) { taskAvailable(chatroomId: $c, role: $r) {"
    " kind resumed task { id status content createdBy assignedTo attempt startedAt"
    " sourceMessage { id } } message { id seq senderRole targetRole content type } } }"
)
# Lean on purpose: a replay sends hundreds of these, and a task's message links would each be
# resolved again; this is every field an event test reads.
ROOM_EVENTS = (
    "subscription($c: ID!, $after: Int) { roomEvents(chatroomId: $c, afterSeq: $after) {"
    " seq kind chatroomId message { id seq type } task { id status attempt assignedTo }"
    f" participant {{ {PARTICIPANT} }} }} }}"
)

# --- sessions and logins ------------------------------------------------------------------------

AGENT_TOKEN = (
    "mutation($c: ID!, $r: String!) { createAgentToken(chatroomId: $c, role: $r)"
    " { token session { id scopeChatroomId scopeRole } } }"
)
REQUEST_LOGIN = (
    "mutation($d: String) { requestCliLogin(deviceName: $d) { requestId userCode status } }"
)
APPROVE_LOGIN = "mutation($code: String!) { approveCliLogin(userCode: $code) { status } }"
# Compared whole in the tests: exactly these three fields.
LOGIN_STATUS = (
    "subscription($id: ID!) { cliLoginStatus(requestId: $id) { status token user { id } } }"
)
REVOKE = "mutation($id: ID) { revokeSession(sessionId: $id) { id revokedAt } }"
SESSIONS = (
    "query { sessions { id deviceName createdAt lastUsedAt expiresAt revokedAt current"
    " scopeChatroomId scopeRole } }"
)
