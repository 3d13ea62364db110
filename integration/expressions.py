"""JSONata (FromOrders) expressions: checked here, evaluated in a separate, bounded process.

The JSONata library's own runtime bound is checked between evaluation steps, so one step that
never ends (a regular expression with catastrophic backtracking, a huge range) is never
interrupted; in a web worker it held the worker, and a few such requests held all of them.
Evaluation therefore runs in a child process with a hard wall-clock limit (it is killed when the
time is up) and an address-space limit, on bounded input, and at most MAX_CONCURRENT at once per
web process.
"""
import json
import multiprocessing
import threading

EXPRESSION_TIMEOUT_MS = 1000  # the library's own bound, checked between steps
EXPRESSION_MAX_DEPTH = 200
EXPRESSION_MAX_LENGTH = 4000  # characters; a FromOrders filter is a line or two
DOCUMENT_MAX_BYTES = 1024 * 1024  # a test order; VTEX's largest are a few hundred KB
DOCUMENT_MAX_DEPTH = 64
RESULT_MAX_BYTES = 256 * 1024
WALL_SECONDS = 3.0  # hard limit of one evaluation
MEMORY_BYTES = 256 * 1024 * 1024  # address space the child may add to what it starts with
MAX_CONCURRENT = 2  # evaluations at once per web process; more are refused, not queued

_slots = threading.BoundedSemaphore(MAX_CONCURRENT)
_context_lock = threading.Lock()
_context = None


def expression_syntax_error(expression):
    """None when the JSONata expression parses, else a human message (parsing is linear in the
    expression's length, which is bounded; only evaluation needs the separate process)."""
    import jsonata

    if len(expression) > EXPRESSION_MAX_LENGTH:
        return f"The expression is {len(expression)} characters long; at most {EXPRESSION_MAX_LENGTH} are accepted."
    try:
        jsonata.Jsonata(expression)
    except jsonata.JException as exc:
        return f"JSONata syntax error: {exc}"
    except Exception as exc:  # the parser's own bugs on odd input (RecursionError on deep nesting)
        return f"JSONata syntax error: {type(exc).__name__}: {exc}"
    return None


def document_problem(document):
    """Why a decoded test document is refused, or None."""
    from integration.bounds import Unstorable, clean_json

    try:
        clean_json(document, field="The document", max_depth=DOCUMENT_MAX_DEPTH, max_bytes=DOCUMENT_MAX_BYTES)
    except Unstorable as exc:
        return str(exc)
    return None


def evaluate_expression(expression, document, *, wall_seconds=None):
    """Evaluate a JSONata expression against a JSON document (an order). Returns (result, error).

    VTEX feeds the order when the result is true. Never takes longer than `wall_seconds` (plus
    the child's start), whatever the expression does."""
    problem = expression_syntax_error(expression) or document_problem(document)
    if problem:
        return None, problem
    if not _slots.acquire(blocking=False):
        return None, f"{MAX_CONCURRENT} expressions are being evaluated already; try again in a few seconds."
    try:
        return _in_child(expression, document, WALL_SECONDS if wall_seconds is None else wall_seconds)
    finally:
        _slots.release()


def _mp_context():
    # forkserver: the child is forked from a small single-threaded server, not from a threaded
    # web worker (forking one of those can copy a held lock), and starts in milliseconds.
    global _context
    with _context_lock:
        if _context is None:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                context.set_forkserver_preload(["integration.expressions", "jsonata"])
            _context = context
        return _context


def _in_child(expression, document, wall_seconds):
    context = _mp_context()
    parent_end, child_end = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(child_end, expression, document), daemon=True)
    process.start()
    child_end.close()
    try:
        if not parent_end.poll(wall_seconds):
            return None, (f"JSONata evaluation error: stopped after {wall_seconds:g} s (a regular expression that "
                          "backtracks, a huge range or a loop); simplify the expression.")
        try:
            kind, value = parent_end.recv()
        except EOFError:  # the child died: the memory limit, most likely
            return None, "JSONata evaluation error: the evaluation ran out of memory and was stopped."
    finally:
        if process.is_alive():
            process.kill()
        process.join(1)
        parent_end.close()
    if kind == "ok":
        return json.loads(value), ""
    return None, value


def _limit_memory():
    import resource

    try:
        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        current = 512 * 1024 * 1024
    limit = current + MEMORY_BYTES
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(conn, expression, document):
    try:
        _limit_memory()
        conn.send(_evaluate_here(expression, document))
    except MemoryError:
        conn.send(("error", "JSONata evaluation error: the evaluation ran out of memory and was stopped."))
    finally:
        conn.close()


def _evaluate_here(expression, document):
    import jsonata

    try:
        expr = jsonata.Jsonata(expression)
        frame = expr.create_frame()
        frame.set_runtime_bounds(EXPRESSION_TIMEOUT_MS, EXPRESSION_MAX_DEPTH)
        result = expr.evaluate(document, frame)
    except MemoryError:
        raise
    except jsonata.JException as exc:
        return "error", f"JSONata evaluation error: {exc}"
    except Exception as exc:
        return "error", f"JSONata evaluation error: {type(exc).__name__}: {exc}"
    try:
        text = json.dumps(result, default=str)
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", f"JSONata evaluation error: the result cannot be shown: {type(exc).__name__}"
    if len(text) > RESULT_MAX_BYTES:
        return "error", f"JSONata evaluation error: the result is over {RESULT_MAX_BYTES} bytes; test a narrower expression."
    return "ok", text
