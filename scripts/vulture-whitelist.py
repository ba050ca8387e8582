"""Names vulture (the dead-code check of scripts/test, issue #17 §2) cannot see being used.

Each is called or read by code outside ``proxy/``: keep this list short, and give a new
entry its reason. Vulture reads this file; nothing imports it.
"""

_ = object

# http.server and socketserver hooks and attributes (STYLE.md §8.1 rule 5).
_.protocol_version
_.server_version
_.setup
_.connection
_.close_connection
_.request_version
_.do_GET
_.do_HEAD
_.do_POST  # --admin-path closes (issue #21): http.server calls do_<METHOD>
_.block_on_close
_.request_queue_size
_.process_request
_.get_request
_.handle_error
_.readline  # transport.httpio: the rfile http.server reads the request head from
_.format_usage  # argparse

# wsproto's Extension interface (protocol.deflate).
_.server_no_context_takeover
_.client_no_context_takeover
_.server_max_window_bits
_.frame_inbound_payload_data

# websockify's attribute names, which its plugins and tests read (#18).
_.expected_origin
_.actual_origin
_._server
_._port
_._db
_._password
_._namespace

# The second argument of every signal handler, signal.signal's signature.
_.frame

# cli.parse_cli: argv to Settings without running, for programs and tests.
_.parse_cli

# socketserver's hook (BaseServer.finish_request), called by socketserver itself.
_.finish_request

# serve.pool.HandlerPool.threads: the pool's size for embedding programs and the tests (#19).
_.threads

# repeaterid.make_block: the ID block a VNC server or noVNC sends, for the tests (#20).
_.make_block
