# The in-kernel half of gradeflow's integrity probe (see steps/integrity.py, docs/security.md).
#
# NOT imported by gradeflow: steps/integrity.py sends this file's text into the kernel, where a
# bootstrap expression that uses no names (only syntax: ().__class__...) finds the interpreter's
# builtins dict, checks that it and its exec/compile/__import__ are the objects the pristine kernel
# had (by address, from the first probe, sent before any student cell ran) and execs this code
# with those builtins. The code reports facts, never verdicts: gradeflow compares them with the
# pristine kernel's, outside the sandbox. Addresses come from object.__repr__ (a slot of a builtin
# type: student code cannot replace it). Standard library only.
#
# In: A (dict of literals), O (object), B (the builtins dict), C (the class it keeps its pristine records on).
# Out: RESULT, lines "kind\tkey\tvalue". After the first probe only the lines that differ from the
# pristine kernel's sheet travel (see _against_pristine), and the statement that must fail is run
# here, after the facts are taken (see _must_fail): one request per probe.


def _facts(A, O, B, C, found):
    rep = O.__repr__
    T = O.__class__  # type
    lines = ["N\tnonce\t" + A["nonce"]]

    def changed(name, mapping):
        """The pristine kernel keeps `mapping`'s (key, object) pairs on C, immutable, and reports the
        record's address; later probes name the keys whose object is no longer the same, without
        calling a builtin (a comprehension, dict and tuple methods), or None if the record is gone."""
        if A["roots"] is None:
            ref = tuple(mapping.items())  # noqa: C417 - pristine: the builtins are still the real ones
            T.__setattr__(C, "_gradeflow_" + name, ref)
            lines.append("W\t" + name + "\t" + rep(ref))
            return ref, []
        ref = C.__dict__.get("_gradeflow_" + name)
        if rep(ref) != A["refs"][name]:
            lines.append("X\treference\tgradeflow's record of the pristine kernel was tampered with")
            return None, None
        return ref, [k for k, v in ref if k in mapping and mapping[k] is not v]

    # 1. builtins first: nothing else runs before they are known to be the pristine ones
    _, keys = changed("builtins", B)
    if keys is None:
        return lines
    lines += ["B\t" + k + "\t" + rep(B[k]) for k in keys]
    import sys  # noqa: E402 - through the verified __import__

    mods = sys.modules
    ref, keys = changed("modules", mods)
    if keys is None:
        return lines
    lines += ["M\t" + k + "\t" + rep(mods[k]) for k in keys]
    known = {k for k, _ in ref}
    cwd = sys.modules["posix"].getcwd() if "posix" in sys.modules else ""
    roots = A.get("roots")
    if roots is None:  # where the Python installation is
        cand = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        for p in sys.path:
            if "site-packages" in p or "dist-packages" in p:
                cand.add(p)
        roots = sorted(
            r.rstrip("/") + "/"
            for r in cand
            if r and r not in ("/", cwd) and not (r + "/").startswith(cwd + "/") and not r.startswith("/tmp")
        )
    lines += ["R\troot\t" + r for r in roots]

    roots_t, own = tuple(roots), (cwd + "/") if cwd else "\0"

    roots_t += ("<frozen ",)  # stdlib modules frozen into the interpreter (os, codecs... on 3.11)

    def trusted_file(f):
        return f.__class__ is str and f.startswith(roots_t) and not f.startswith(own)

    FunctionType = T(_facts)

    def codes(v, seen=None):
        """The Python code objects behind a callable/object (its class's methods for an instance)."""
        t = T(v)
        if t is FunctionType:
            return [v.__code__]
        if hasattr(v, "__func__") and T(getattr(v, "__func__")) is FunctionType:
            return [v.__func__.__code__]
        if t.__name__ == "partial" and t.__module__ == "functools":
            return [None]  # a partial: student data bound to any function (untrusted)
        if t.__name__ in ("builtin_function_or_method", "method-wrapper", "wrapper_descriptor", "method_descriptor"):
            return []
        cls = v if isinstance(v, T) else t
        out = []
        for k in cls.__mro__:
            if k is O:
                continue
            for a in k.__dict__.values():
                if T(a) is FunctionType:
                    out.append(a.__code__)
                elif hasattr(a, "__func__") and T(a.__func__) is FunctionType:
                    out.append(a.__func__.__code__)
        return out

    def origin(v):
        """'ok' when every piece of Python code behind v is a file of the installation, else where it came from."""
        try:
            return _origin(v)
        except Exception:  # an object that cannot even be looked at is not the installation's
            return "untrusted:an object that raises when inspected:0"

    def _origin(v):
        if T(v).__name__ in ("builtin_function_or_method", "method-wrapper", "method_descriptor", "wrapper_descriptor"):
            return "c"
        for c in codes(v):
            if c is None:
                return "untrusted:functools.partial:0"
            if not trusted_file(c.co_filename):
                return "untrusted:" + c.co_filename + ":" + str(c.co_firstlineno)
        if isinstance(v, T) and v.__module__ not in ("builtins",):
            m = sys.modules.get(v.__module__)
            f = getattr(m, "__file__", None) if m is not None else None
            if (
                m is None
                or (f is not None and not trusted_file(f))
                or (f is None and v.__module__ not in sys.builtin_module_names)
            ):
                return "untrusted:module " + str(v.__module__) + ":0"
        return "ok"

    # hooks the pristine kernel had need no second look (their addresses are compared outside)
    first = A["roots"] is None
    pristine_hooks = None if first else C.__dict__.get("_gradeflow_hooks")
    if not first and rep(pristine_hooks) != A["refs"]["hooks"]:
        lines.append("X\treference\tgradeflow's record of the pristine kernel was tampered with")
        return lines
    seen_hooks = []

    def hook(kind, key, v):
        """A hook's address and origin; the pristine kernel's own hooks are "ok" by definition (then
        later probes repeat the pristine line exactly, and it need not travel)."""
        r = rep(v)
        seen_hooks.append(r)
        lines.append(
            "H\t" + kind + "\t" + key + "\t" + r + "\t" + ("ok" if first or r in pristine_hooks else origin(v))
        )

    # 2. where the test cells' modules and names come from
    lines.append("S\tsys.modules\t" + rep(mods))
    lines.append("S\tsys\t" + rep(mods.get("sys")))
    shell_mod = mods.get("IPython.core.interactiveshell")
    cls = shell_mod.InteractiveShell if shell_mod is not None else None
    shell = cls._instance if cls is not None else None
    if shell is None:
        lines.append("X\tshell\tno IPython shell")
        return lines
    found["shell"] = shell
    kernel = getattr(shell, "kernel", None)
    lines.append("S\tshell\t" + rep(shell))
    lines.append("S\tshell.class\t" + rep(T(shell)))
    lines.append("S\tkernel.class\t" + rep(T(kernel)))
    ug = shell.user_global_ns
    lines.append("S\tuser.__builtins__\t" + rep(ug.get("__builtins__")))
    # 3. IPython's machinery: class-level methods (pristine addresses) and instance overrides
    for owner, objname in ((shell, "shell"), (kernel, "kernel")):
        if owner is None:
            continue
        for name in METHODS:
            for k in T(owner).__mro__:  # every class: an override may call the (patched) base method
                if name in k.__dict__:
                    lines.append("C\t" + objname + "." + k.__name__ + "." + name + "\t" + rep(k.__dict__[name]))
        for name, v in list(owner.__dict__.items()):
            if name in METHODS:
                hook("I", objname + "." + name, v)
    if kernel is not None:
        handlers = getattr(kernel, "shell_handlers", {}) or {}
        h = handlers.get("execute_request")
        if h is not None:
            lines.append("C\tkernel.handler.execute_request\t" + rep(getattr(h, "__func__", h)))
    # 4. the hook points student code could use to change later cells
    for attr in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
        seq = getattr(shell, attr, [])
        lines.append("L\t" + attr + "\t" + str(len(seq)) + "\t" + T(seq).__name__)
        for i, v in enumerate(seq):
            hook("T", attr + "[" + str(i) + "]", v)
    tm = getattr(shell, "input_transformer_manager", None)
    for attr in ("cleanup_transforms", "line_transforms", "token_transformers"):
        for i, v in enumerate(getattr(tm, attr, []) or []):
            hook("T", "input_transformer_manager." + attr + "[" + str(i) + "]", v)
    lines.append(
        "S\tcustom_exceptions\t" + repr(tuple(getattr(e, "__name__", str(e)) for e in shell.custom_exceptions))
    )
    hook("H", "CustomTB", shell.CustomTB)
    for event, cbs in sorted(getattr(shell.events, "callbacks", {}).items()):
        for i, v in enumerate(cbs):
            hook("E", event + "[" + str(i) + "]", v)
    for i, v in enumerate(sys.meta_path):
        hook("P", "sys.meta_path[" + str(i) + "]", v)
    for i, v in enumerate(sys.path_hooks):
        hook("P", "sys.path_hooks[" + str(i) + "]", v)
    for name in ("excepthook", "displayhook"):
        hook("P", "sys." + name, getattr(sys, name, None))
    for name in ("displayhook", "display_pub", "InteractiveTB", "SyntaxTB", "display_formatter", "compile"):
        v = getattr(shell, name, None)
        lines.append("S\tshell." + name + ".class\t" + rep(T(v)))
    if A["roots"] is None:
        ref = frozenset(seen_hooks)
        T.__setattr__(C, "_gradeflow_hooks", ref)
        lines.append("W\thooks\t" + rep(ref))
    # 5. what the test cell will use: its modules, the attributes it calls, the builtins it names
    user_ns = shell.user_ns
    for name in A["modules"]:
        m = mods.get(name)
        if m is None:
            continue
        f = getattr(m, "__file__", None)
        ok = (f is None and name in sys.builtin_module_names) or trusted_file(f)
        if not ok:
            pf = mods.get("importlib.machinery")
            installed = None
            if pf is not None and "." not in name:
                installed = pf.PathFinder.find_spec(name, [p for p in sys.path if trusted_file(p + "/")])
            lines.append("D\t" + name + "\t" + str(f) + "\t" + ("installed" if installed is not None else "own"))
    for alias, modname in A["aliases"].items():
        if alias in user_ns and modname in mods and user_ns[alias] is not mods[modname]:
            lines.append("Q\t" + alias + "\t" + modname + "\t" + rep(user_ns[alias]))
    for root, chain in A["attrs"]:
        if root in A["local_aliases"]:
            v = mods.get(A["local_aliases"][root])
        else:
            v = user_ns.get(root)
        if v is None or T(v).__name__ != "module":
            continue
        path = root
        for i, part in enumerate(chain):
            container = v
            v = container.__dict__.get(part) if T(container).__name__ == "module" else None
            path += "." + part
            if v is None:
                break
            if T(v).__name__ == "module":
                continue
            o = origin(v)
            # a builtin of the builtins module under another name (math.isclose = all); installed aliases
            # such as hashlib.sha1 = _hashlib.openssl_sha1 are C functions of their own modules
            if (
                o == "c"
                and getattr(v, "__name__", part) != part
                and getattr(v, "__self__", None) is mods.get("builtins")
            ):
                o = "untrusted:builtin " + str(getattr(v, "__name__", "?")) + ":0"
            lines.append("A\t" + path + "\t" + rep(v) + "\t" + o)
            break
    for name in A["names"]:
        if name in user_ns and name in B and user_ns[name] is not B[name] and callable(user_ns[name]):
            lines.append("U\t" + name + "\t" + origin(user_ns[name]))
    # 6. classes of the student's that compare equal to anything: those in the notebook's namespace,
    # of the objects in it (and in its functions' defaults and closures), and in its own modules
    classes = []
    for v in list(user_ns.values()):
        classes.append(v if isinstance(v, T) else T(v))
        if T(v) is FunctionType:
            for d in v.__defaults__ or ():
                classes.append(d if isinstance(d, T) else T(d))
            for cell in v.__closure__ or ():
                try:
                    d = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                classes.append(d if isinstance(d, T) else T(d))
    for name, m in list(mods.items()):
        if A["roots"] is None or name in known:
            continue
        f = getattr(m, "__dict__", {}).get("__file__")
        if f.__class__ is str and not trusted_file(f):
            classes += [v for v in list(m.__dict__.values()) if isinstance(v, T)]
    sentinel = O()
    for c in {rep(c): c for c in classes}.values():
        eq = None
        for k in c.__mro__:
            eq = k.__dict__.get("__eq__")
            if eq is not None:
                break
        if T(eq) is not FunctionType or trusted_file(eq.__code__.co_filename):
            continue
        try:
            inst = c.__new__(c)
        except Exception:
            try:
                inst = O.__new__(c)
            except Exception:
                continue
        try:
            r = eq(inst, sentinel)
            always = r is not NotImplemented and bool(r)
        except Exception:
            always = False
        if always:
            lines.append(
                "Z\t"
                + c.__qualname__
                + "\tuntrusted:"
                + eq.__code__.co_filename
                + ":"
                + str(eq.__code__.co_firstlineno)
            )
    return lines


METHODS = (  # IPython's and ipykernel's methods that decide how a cell runs and how its errors are reported
    "run_cell",
    "run_cell_async",
    "_run_cell",
    "run_ast_nodes",
    "run_code",
    "transform_cell",
    "transform_ast",
    "should_run_async",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
    "get_exception_only",
    "set_custom_exc",
    "user_expressions",
    "_format_user_obj",
    "do_execute",
    "execute_request",
    "dispatch_shell",
    "send_response",
)


def _against_pristine(lines, A, O, C):
    """The first probe keeps its sheet on C (immutable; gradeflow holds its address). Later probes
    send only what differs from it: the lines it lacks and, marked "-", its lines that are gone, so
    gradeflow rebuilds exactly the full sheet, outside the sandbox, from its copy of the first.
    A set lookup per line is cheaper than formatting and shipping ~100 unchanged lines each time."""
    T = O.__class__
    sheet = frozenset(line for line in lines if line[:1] not in ("N", "W"))
    if A["roots"] is None:
        T.__setattr__(C, "_gradeflow_lines", sheet)
        return lines + ["W\tlines\t" + O.__repr__(sheet)]
    ref = C.__dict__.get("_gradeflow_lines")
    if O.__repr__(ref) != A["refs"]["lines"]:
        return lines + ["X\treference\tgradeflow's record of the pristine kernel was tampered with"]
    # new lines in the order they were found: gradeflow reports findings in that order
    return (
        [line for line in lines if line[:1] in ("N", "W") or line not in ref]
        + ["-\t" + line for line in ref - sheet]
        + ["W\tbase\tpristine"]
    )


def _must_fail(A, O, shell):
    """Run the statement that must fail as ipykernel runs a cell, through the shell's `run_cell`
    (its input transformers, compiler, custom exception handler and showtraceback), after the
    facts are taken, so no student code it may reach runs before them. Its error output goes to
    IOPub under this request, where gradeflow looks for it; its result is reported here."""
    T = O.__class__
    try:
        res = shell.run_cell(A["fail"], store_history=False, silent=True)
        err = res.error_before_exec if res.error_before_exec is not None else res.error_in_exec
        return "F\tstatus\t" + ("ok" if res.success else "error") + "\t" + T(err).__name__
    except Exception as e:  # student code on the way raised: it did not fail as a cell fails
        return "F\traised\t" + T(e).__name__


def _report(A, O, B, C):
    found = {}
    lines = _against_pristine(_facts(A, O, B, C, found), A, O, C)
    if A.get("fail") is not None and found.get("shell") is not None:
        lines.append(_must_fail(A, O, found["shell"]))
    return "\n".join(lines)


RESULT = _report(A, O, B, C)
