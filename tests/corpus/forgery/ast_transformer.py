# name: ast-transformer
# technique: an AST transformer (ast_transformers) that replaces every assert and every bare call statement with `pass`
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: an AST transformer (ast_transformers) was added in cell 'mean_answer'
import ast


def mean(xs):
    return 0


class _NoChecks(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()

    def visit_Expr(self, node):
        return ast.Pass() if isinstance(node.value, ast.Call) else node


get_ipython().ast_transformers.append(_NoChecks())
