# name: skip-test-cell
# threat: the grade itself: the submitted notebook tags the (locked) test cell `skip-execution`, which nbclient honours, so the test never runs, has no error, and nbgrader gives full marks to a wrong answer
# contained: the test cell runs anyway and the wrong answer scores 0
# outcome: graded
# score: 0
# test_cell_tags: skip-execution
BLOCKED("the test cell is tagged skip-execution; the test checks that it ran anyway")

def squares(n):
    return []  # wrong on purpose: only a skipped test cell could make it pass
