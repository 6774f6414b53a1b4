"""The timeout budget shared by the server and the client, in one place, with the reason for
each number.

One blocking acquire nests four timeouts, each longer than the one inside it, so the inner one
answers first and the outer one only fires when a node is gone or frozen:

    client: the acquire call's deadline     RetryPolicy.deadline + wait, for all attempts
      client: one attempt                   wait + CLIENT_WAIT_GRACE_S
        server: the blocked request         wait + SERVER_WAIT_GRACE_S, then UNKNOWN_OUTCOME
          server: one proposal's commit     COMMIT_TIMEOUT_MS, then UNKNOWN_OUTCOME

Every other call is one attempt of at most ``ATTEMPT_TIMEOUT_S`` around one proposal or one
read barrier, each bounded by ``COMMIT_TIMEOUT_MS``.
"""

#: How long past its deadline a blocked acquire waits for the state machine's answer (the
#: Tick that ends the wait). The leader's duties loop notices a due deadline within half a
#: second (``DUTIES_IDLE_S`` in turnstile.cluster.node) and its Tick commits in milliseconds;
#: the rest is room for a slow disk or a busy leader. Longer only delays the UNKNOWN_OUTCOME
#: of a leader in trouble.
SERVER_WAIT_GRACE_S = 2.0

#: How long past its wait a client gives one blocked Acquire attempt. Above
#: ``SERVER_WAIT_GRACE_S`` by a few round trips and a commit, so the server's own answer
#: (granted, not acquired, or UNKNOWN_OUTCOME) arrives first; after it, the node is taken for
#: frozen and the client retries the same request id on another.
CLIENT_WAIT_GRACE_S = 5.0

#: The default longest single attempt of a non-blocking call: at least one proposal's commit
#: timeout, so a slow commit answers UNKNOWN_OUTCOME (the client retries the same request id)
#: rather than being cut off; a paused node is given up on after it.
ATTEMPT_TIMEOUT_S = 5.0

#: The default time a proposal may wait for its commit before the caller gets UNKNOWN_OUTCOME
#: (``timing.commit_timeout_ms``). Five to ten default election timeouts: a commit waits out an
#: election, not a majority that is gone.
COMMIT_TIMEOUT_MS = 5_000

#: The default deadline of one client call, all attempts and backoffs included: long enough
#: to ride out a leader's failure (an election, then the new leader taking office), short
#: enough that a worker facing a cluster without quorum hears about it.
CALL_DEADLINE_S = 30.0

#: A session's keep-alives go every TTL / 3, so two may be lost before the session expires.
KEEP_ALIVES_PER_TTL = 3

#: How long a client steers clear of a node that let an attempt time out: calls go to the
#: other nodes, and hints naming it are not followed. About two default election timeouts, by
#: when the others have elected a leader if it is frozen.
STALLED_NODE_AVOID_S = 2.0

#: The same for a node that refused the connection (a dead process): short, because trying
#: it again costs a millisecond, and a restarted node may be the new leader a moment later.
UNREACHABLE_NODE_AVOID_S = 0.5

#: A keep-alive attempt may take this share of the keep-alive interval, so a keep-alive that
#: meets a frozen node has tried another before the next one is due.
KEEP_ALIVE_ATTEMPT_SHARE = 0.5
