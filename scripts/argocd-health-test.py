#!/usr/bin/env python3
"""Runs Argo CD health-check tests with a real Lua 5.1 interpreter.

    argocd-health-test.py [--lua lua5.1] DIR...

Each DIR (searched recursively) holding a health.lua and a health_test.yaml is a check in
Argo CD's resource_customizations layout. For every case of health_test.yaml
(`tests: [{healthStatus: {status, message}, inputPath}]`) the object at inputPath becomes a
Lua table literal, health.lua runs as the body of `function(obj) ... end` (as Argo CD runs
it: a script that sees `obj` and returns a table), and the status and message it returns
must equal the expected ones exactly. Argo CD runs gopher-lua, a Lua 5.1 dialect: lua5.1
(Debian package lua5.1) accepts and refuses the same syntax and standard library subset.

Exit status 0 when every case passes, 1 when any fails, 2 on unusable input. The last line
is 'N passed, N failed'.
"""
import argparse
import math
import os
import subprocess
import sys

import yaml

# Delimits the two outputs of one run, so that a message may hold any text.
SEPARATOR = "\x1e"


def lua_string(text):
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif code < 32 or code == 127:
            out.append("\\%03d" % code)
        elif code < 128:
            out.append(ch)
        else:
            # Lua 5.1 strings are bytes: write UTF-8 bytes as decimal escapes.
            out.extend("\\%03d" % b for b in ch.encode("utf-8"))
    out.append('"')
    return "".join(out)


def lua_literal(value):
    """A Lua 5.1 expression for a JSON-like value, as Argo CD hands objects to Lua
    (objects and arrays become tables, null becomes nil)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN and infinity have no JSON form")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        items = []
        for key, v in value.items():
            if v is None:
                continue  # a nil field is an absent field
            items.append("[" + lua_string(str(key)) + "] = " + lua_literal(v))
        return "{" + ", ".join(items) + "}"
    if hasattr(value, "isoformat"):  # YAML timestamps: JSON has strings
        return lua_string(value.isoformat())
    raise ValueError(f"cannot express {type(value).__name__} in Lua")


def load_object(path):
    with open(path, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ValueError(f"{path}: expected exactly one object")
    return docs[0]


def run_case(lua, script, obj):
    program = (
        "local obj = " + lua_literal(obj) + "\n"
        "local hs = (function(obj)\n" + script + "\nend)(obj)\n"
        "if type(hs) ~= 'table' then error('health.lua returned ' .. type(hs) .. ', not a table') end\n"
        f"io.write(tostring(hs.status), '{SEPARATOR}', tostring(hs.message))\n"
    )
    result = subprocess.run([lua, "-"], input=program.encode("utf-8"), capture_output=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{lua} failed: {result.stderr.decode('utf-8', 'replace').strip()}")
    status, _, message = result.stdout.decode("utf-8").partition(SEPARATOR)
    return status, message


def check_dirs(paths):
    for path in paths:
        for root, _, files in os.walk(path):
            if "health.lua" in files and "health_test.yaml" in files:
                yield root
            elif "health.lua" in files or "health_test.yaml" in files:
                raise ValueError(f"{root}: health.lua and health_test.yaml go together")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lua", default="lua5.1", help="the Lua 5.1 interpreter (default: lua5.1)")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()

    passed = failed = 0
    try:
        dirs = sorted(check_dirs(args.dirs))
        if not dirs:
            print("argocd-health-test: no health.lua with a health_test.yaml found", file=sys.stderr)
            return 2
        for directory in dirs:
            with open(os.path.join(directory, "health.lua"), encoding="utf-8") as fh:
                script = fh.read()
            with open(os.path.join(directory, "health_test.yaml"), encoding="utf-8") as fh:
                cases = (yaml.safe_load(fh) or {}).get("tests") or []
            if not cases:
                print(f"argocd-health-test: {directory}/health_test.yaml has no tests", file=sys.stderr)
                return 2
            for case in cases:
                input_path = os.path.join(directory, case["inputPath"])
                expected = case["healthStatus"]
                want = (expected["status"], expected.get("message", ""))
                try:
                    got = run_case(args.lua, script, load_object(input_path))
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
                    got = ("<error>", str(error))
                name = os.path.relpath(input_path)
                if got == want:
                    passed += 1
                    print(f"ok   {name}: {got[0]}: {got[1]}")
                else:
                    failed += 1
                    print(f"FAIL {name}\n     want {want[0]}: {want[1]}\n     got  {got[0]}: {got[1]}")
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        print(f"argocd-health-test: {error}", file=sys.stderr)
        return 2
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
