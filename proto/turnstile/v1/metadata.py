"""Call metadata keys both sides spell: what a client sends and what a node sends back."""

#: Request metadata carrying the client's credential, ``authorization: Bearer <token>``
#: (gRPC lower-cases keys).
AUTHORIZATION_METADATA_KEY = "authorization"
#: The scheme in front of the token in that value.
BEARER_SCHEME = "Bearer "
#: Trailing metadata carrying the leader's client address on NOT_LEADER.
LEADER_METADATA_KEY = "turnstile-leader"
