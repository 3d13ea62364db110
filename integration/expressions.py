"""JSONata, the language of VTEX's FromOrders feed filters: check an expression, evaluate it."""

EXPRESSION_TIMEOUT_MS = 1000
EXPRESSION_MAX_DEPTH = 200


def expression_syntax_error(expression):
    """None when the JSONata expression parses, else a human message."""
    import jsonata

    try:
        jsonata.Jsonata(expression)
    except jsonata.JException as exc:
        return f"JSONata syntax error: {exc}"
    except Exception as exc:  # the parser's own bugs on odd input
        return f"JSONata syntax error: {type(exc).__name__}: {exc}"
    return None


def evaluate_expression(expression, document):
    """Evaluate a JSONata expression against a JSON document (an order), bounded in time and depth.

    Returns (result, error). VTEX feeds the order when the result is true.
    """
    import jsonata

    problem = expression_syntax_error(expression)
    if problem:
        return None, problem
    try:
        expr = jsonata.Jsonata(expression)
        frame = expr.create_frame()
        frame.set_runtime_bounds(EXPRESSION_TIMEOUT_MS, EXPRESSION_MAX_DEPTH)
        return expr.evaluate(document, frame), ""
    except jsonata.JException as exc:
        return None, f"JSONata evaluation error: {exc}"
    except Exception as exc:
        return None, f"JSONata evaluation error: {type(exc).__name__}: {exc}"
