"""The steward console (数据管理员工作台): a web application beside the Dagster UI for what that UI does not
do — look at the data, browse the quarantine, decide requests, look up a firm's 亩均 evaluation, trace a
column. Pages are rendered on the server (Jinja2, autoescaped) and use no script at all; every asset is served
from here (no CDN). Every page and action checks the signed-in role; every form carries a CSRF token.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import secrets
import urllib.parse
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from console.data import Console, Denied, NotFound, Viewer
from console.sessions import Sessions, digest
from exchange.identity import IdentityError
from lakehouse import objections
from orchestration import keys
from quality import resolution

HERE = Path(__file__).resolve().parent
COOKIE = "shucang_console"
LOGIN_CSRF_COOKIE = "shucang_login_csrf"
ROLE_ZH = {"steward": "数据管理员", "modeler": "模型开发者", "consumer": "数据使用方"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Unauthenticated(Exception):
    pass


def trend_svg(values: list[float], width: int = 360, height: int = 80) -> str:
    """A score history as an inline SVG line (0–100 on the vertical axis), drawn here: no script, no CDN."""
    points = [v for v in values if v is not None and not math.isnan(v)]
    if not points:
        return ""
    step = width / max(len(points) - 1, 1)
    xy = " ".join(f"{i * step:.1f},{height - v / 100 * height:.1f}" for i, v in enumerate(points))
    dots = "".join(
        f'<circle cx="{i * step:.1f}" cy="{height - v / 100 * height:.1f}" r="3"><title>{v:.2f}</title></circle>'
        for i, v in enumerate(points)
    )
    return (
        f'<svg class="trend" viewBox="-4 -4 {width + 8} {height + 8}" width="{width + 8}" height="{height + 8}" '
        f'role="img" aria-label="质量得分趋势 score trend"><polyline points="{xy}" fill="none" stroke="#1f6feb" '
        f'stroke-width="2"/>{dots}</svg>'
    )


def app(
    console: Console,
    dagster_url: str = "http://127.0.0.1:3000",
    sessions: Sessions | None = None,
    secure_cookies: bool = False,
) -> Starlette:
    sessions = sessions or Sessions()
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescaped (Starlette default)
    templates.env.globals.update(
        role_zh=ROLE_ZH, dagster_url=dagster_url.rstrip("/"), quote=urllib.parse.quote, facet_query=_facet_query
    )
    templates.env.filters["fmt"] = _fmt

    def viewer_of(request: Request):
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:
            raise Unauthenticated()
        return s

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        s = sessions.get(request.cookies.get(COOKIE))
        context |= {"viewer": s.viewer if s else None, "csrf": s.csrf if s else ""}
        return templates.TemplateResponse(request, template, context, status_code=status)

    async def form_of(request: Request, s) -> dict:
        """The posted form, after the CSRF token and the origin are checked."""
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise Denied("跨站请求被拒绝 — cross-site request refused")
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), s.csrf):
            raise Denied("表单已失效，请刷新后重试 — the form's CSRF token is missing or wrong; reload and try again")
        return {k: str(v) for k, v in form.items()}

    # --- sign-in ------------------------------------------------------------------------------------------------
    async def login(request: Request):
        if request.method == "GET":
            token = secrets.token_urlsafe(24)
            response = page(request, "login.html", login_csrf=token, next=request.query_params.get("next", "/"))
            response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
            return response
        form = {k: str(v) for k, v in (await request.form()).items()}
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        nxt = form.get("next", "/")
        nxt = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
        if not cookie or not secrets.compare_digest(form.get("csrf", ""), cookie):
            return page(
                request,
                "login.html",
                403,
                error="表单已失效，请重新登录 — the sign-in form expired; try again",
                login_csrf="",
                next=nxt,
            )
        who, client = form.get("id", "").strip(), request.client.host if request.client else "?"
        wait = sessions.throttled(f"id:{who}", f"ip:{client}")
        if wait:
            return page(
                request,
                "login.html",
                429,
                error=f"登录失败次数过多，请 {int(wait) + 1} 秒后再试 — too many failed sign-ins; try again in {int(wait) + 1} s",
                login_csrf=cookie,
                next=nxt,
            )
        try:
            p = console.exchange.principals.sign_in(who, form.get("password", ""))
        except IdentityError:
            sessions.failed(f"id:{who}", f"ip:{client}")
            return page(
                request,
                "login.html",
                401,
                error="账号或密码错误 — unknown id or wrong password",
                login_csrf=cookie,
                next=nxt,
            )
        sessions.succeeded(f"id:{who}")
        token = sessions.open(Viewer(p.id, p.role, p.name, p.department))
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    async def logout(request: Request):
        s = viewer_of(request)
        await form_of(request, s)
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # --- catalogue ----------------------------------------------------------------------------------------------
    async def home(request: Request):
        viewer_of(request)
        return RedirectResponse("/catalogue", status_code=303)

    async def catalogue(request: Request):
        s = viewer_of(request)
        q = request.query_params.get("q", "")
        chosen = {f: request.query_params.get(f, "") for f in ("zone", "department", "grade", "share_type")}
        hits, counts = console.search(s.viewer, q, chosen)
        return page(request, "catalogue.html", q=q, chosen=chosen, hits=hits, counts=counts)

    async def dataset(request: Request, reason: str = "", refused: str = ""):
        s = viewer_of(request)
        zone, name = request.path_params["zone"], request.path_params["name"]
        entry = console.entry(s.viewer, zone, name)
        fresh, updated = console.freshness(entry)
        scores = console.scores(s.viewer, entry)
        preview, preview_error = None, refused
        needs_reason = zone in ("raw", "quarantine")
        if s.viewer.role != "consumer" and (not needs_reason or reason):
            try:
                preview = console.preview(s.viewer, zone, name, reason)
            except (Denied, NotFound, ValueError) as exc:
                preview_error = str(exc)
        return page(
            request,
            "dataset.html",
            entry=entry,
            fresh=fresh,
            updated=updated,
            scores=scores,
            trend=trend_svg([r.get("overall") for r in scores]),
            preview=preview,
            preview_error=preview_error,
            needs_reason=needs_reason and preview is None,
            reason=reason,
            asset_path=keys.key(zone, name).to_user_string(),
        )

    async def dataset_preview(request: Request):
        s = viewer_of(request)
        form = await form_of(request, s)
        reason = form.get("reason", "").strip()
        if not reason:
            refused = "查看原始数据需填写事由 — reading raw data needs a reason (it is audited)"
            response = await dataset(request, "", refused)
            response.status_code = 400
            return response
        return await dataset(request, reason)

    # --- quarantine ---------------------------------------------------------------------------------------------
    async def quarantine(request: Request):
        s = viewer_of(request)
        ds, dept = request.query_params.get("dataset", ""), request.query_params.get("department", "")
        found = console.quarantine(s.viewer, ds, dept)
        lists = console.problem_lists(s.viewer)
        return page(
            request, "quarantine.html", found=found, lists=lists, ds=ds, dept=dept, departments=console.departments
        )

    async def problem_list(request: Request):
        s = viewer_of(request)
        dept, filename = request.path_params["department"], request.path_params["filename"]
        body = console.problem_list(s.viewer, dept, filename)
        kind = (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            if filename.endswith(".xlsx")
            else "text/csv; charset=utf-8"
        )
        quoted = urllib.parse.quote(filename)
        return Response(
            body, media_type=kind, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quoted}"}
        )

    # --- requests -----------------------------------------------------------------------------------------------
    async def requests_page(request: Request):
        s = viewer_of(request)
        return page(request, "requests.html", states=console.requests(s.viewer))

    async def request_page(request: Request, error: str = "", status: int = 200):
        s = viewer_of(request)
        rid = request.path_params["rid"]
        state = console.request(s.viewer, rid)
        return page(
            request,
            "request.html",
            status,
            s_=state,
            history=console.history(s.viewer, rid),
            error=error,
            now=dt.datetime.now(dt.UTC),
        )

    async def steward_action(request: Request, refused: str, no_reason: str, act):
        """A steward's action on a request (decide, revoke): CSRF-checked, stewards only, with a reason, done
        as the signed-in steward in this session; a refusal is shown on the request's page."""
        s = viewer_of(request)
        form = await form_of(request, s)
        rid = request.path_params["rid"]
        if s.viewer.role != "steward":
            raise Denied(refused)
        console.request(s.viewer, rid)
        if not form.get("reason", "").strip():
            return await request_page(request, no_reason, 400)
        try:
            act(_principal(console, s.viewer), rid, form, digest(request.cookies.get(COOKIE, "")))
        except (ValueError, FileNotFoundError, IdentityError) as exc:
            return await request_page(request, str(exc), 400)
        return RedirectResponse(f"/requests/{urllib.parse.quote(rid)}", status_code=303)

    async def decide(request: Request):
        return await steward_action(
            request,
            "只有数据管理员可以审批 — only a steward decides requests",
            "审批须填写理由 — a decision needs a reason",
            lambda who, rid, form, session: console.exchange.decide_as(
                who, rid, form.get("decision", ""), form["reason"], session
            ),
        )

    async def revoke(request: Request):
        return await steward_action(
            request,
            "只有数据管理员可以撤销共享 — only a steward revokes shares",
            "撤销须填写理由 — a revocation needs a reason",
            lambda who, rid, form, session: console.exchange.revoke_as(who, rid, form["reason"], session),
        )

    async def share_preview(request: Request):
        s = viewer_of(request)
        rid, ds = request.path_params["rid"], request.path_params["dataset"]
        frame = console.share_preview(s.viewer, rid, ds)
        return page(request, "share.html", rid=rid, dataset=ds, preview=frame)

    # --- 亩均 ---------------------------------------------------------------------------------------------------
    async def mujun(request: Request):
        s = viewer_of(request)
        q = request.query_params.get("q", "")
        return page(request, "mujun.html", q=q, hits=console.mujun_search(s.viewer, q) if q else [])

    def year_of(request: Request) -> int:
        try:
            return int(request.path_params["year"])
        except ValueError:
            raise NotFound("年份无效 — not a year") from None

    async def mujun_firm(request: Request, error: str = "", status: int = 200):
        s = viewer_of(request)
        uscc, year = request.path_params["uscc"], year_of(request)
        return page(
            request,
            "mujun_firm.html",
            status,
            d=console.mujun(s.viewer, uscc, year),
            objections=console.objections(s.viewer, uscc, year),
            inputs=objections.INPUTS,
            error=error,
        )

    async def objection(request: Request):
        """File an objection (no id in the path) or decide one."""
        s = viewer_of(request)
        form = await form_of(request, s)
        uscc, year = request.path_params["uscc"], year_of(request)
        try:
            if "oid" in request.path_params:
                decision = form.get("decision", "")
                if decision not in ("accepted", "rejected"):
                    raise objections.ObjectionError("请选择采纳或驳回 — accept or reject")
                console.decide_objection(
                    s.viewer, request.path_params["oid"], decision == "accepted", form.get("reason", "")
                )
            else:
                console.file_objection(
                    s.viewer,
                    uscc,
                    year,
                    form.get("input", ""),
                    form.get("value", ""),
                    form.get("statement", ""),
                    form.get("evidence", ""),
                )
        except objections.ObjectionError as exc:
            return await mujun_firm(request, str(exc), 400)
        return RedirectResponse(f"/mujun/{urllib.parse.quote(uscc)}/{year}#objections", status_code=303)

    # --- entity resolution --------------------------------------------------------------------------------------
    async def entities(request: Request, error: str = "", status_code: int = 200):
        s = viewer_of(request)
        status = request.query_params.get("status", "review")
        ds = request.query_params.get("dataset", "")
        found = console.entity_matches(s.viewer, status, ds)
        chain = console.chain_unknown(s.viewer)
        return page(request, "entities.html", status_code, found=found, chosen=status, ds=ds, error=error, chain=chain)

    async def entity_decide(request: Request):
        s = viewer_of(request)
        form = await form_of(request, s)
        if s.viewer.role != "steward":
            raise Denied("只有数据管理员可以确认主体 — only a steward decides entity matches")
        try:
            row = int(form.get("row_number", ""))
        except ValueError:
            return await entities(request, "行号无效 — not a row number", 400)
        decision = form.get("decision", "")
        uscc = (form.get("other") or "").strip().upper() or form.get("uscc", "")
        try:
            console.decide_entity(
                s.viewer,
                form.get("dataset", ""),
                form.get("source_file", ""),
                row,
                decision,
                uscc,
                form.get("reason", ""),
            )
        except resolution.ResolutionError as exc:
            return await entities(request, str(exc), 400)
        return RedirectResponse("/entities", status_code=303)

    # --- lineage ------------------------------------------------------------------------------------------------
    async def lineage(request: Request):
        s = viewer_of(request)
        ds, col = request.query_params.get("dataset", ""), request.query_params.get("column", "")
        options = console.published_columns(s.viewer) if s.viewer.role != "consumer" else {}
        steps = console.lineage(s.viewer, ds, col) if ds and col else None
        return page(request, "lineage.html", ds=ds, col=col, options=options, steps=steps)

    async def health(request: Request):
        return Response("ok", media_type="text/plain")

    # --- errors -------------------------------------------------------------------------------------------------
    async def unauthenticated(request: Request, exc):
        if request.method != "GET":
            return page(
                request,
                "error.html",
                401,
                title="请先登录 Sign in first",
                message="会话已过期或未登录 — your session expired or you are not signed in",
            )
        target = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/login?next={target}", status_code=303)

    async def denied(request: Request, exc):
        return page(request, "error.html", 403, title="无权访问 Not allowed", message=str(exc))

    async def not_found(request: Request, exc):
        message = str(exc) if isinstance(exc, NotFound) else "页面不存在 — no such page"
        return page(request, "error.html", 404, title="未找到 Not found", message=message)

    async def bad(request: Request, exc):
        return page(request, "error.html", 400, title="请求有误 Bad request", message=str(exc))

    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return await not_found(request, exc)
        return page(
            request, "error.html", exc.status_code, title=str(exc.status_code), message=html.escape(exc.detail or "")
        )

    async def failure(request: Request, exc):
        return page(
            request,
            "error.html",
            500,
            title="内部错误 Internal error",
            message="服务出错，已记录 — something went wrong on our side",
        )

    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/catalogue", catalogue),
        Route("/datasets/{zone}/{name:path}/preview", dataset_preview, methods=["POST"]),
        Route("/datasets/{zone}/{name:path}", dataset),
        Route("/quarantine", quarantine),
        Route("/problem-lists/{department}/{filename}", problem_list),
        Route("/requests", requests_page),
        Route("/requests/{rid}", request_page),
        Route("/requests/{rid}/decide", decide, methods=["POST"]),
        Route("/requests/{rid}/revoke", revoke, methods=["POST"]),
        Route("/requests/{rid}/shares/{dataset}", share_preview),
        Route("/mujun", mujun),
        Route("/mujun/{uscc}/{year}", mujun_firm),
        Route("/mujun/{uscc}/{year}/objections", objection, methods=["POST"]),
        Route("/mujun/{uscc}/{year}/objections/{oid}", objection, methods=["POST"]),
        Route("/entities", entities),
        Route("/entities/decide", entity_decide, methods=["POST"]),
        Route("/lineage", lineage),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers = {
        Unauthenticated: unauthenticated,
        Denied: denied,
        NotFound: not_found,
        ValueError: bad,
        HTTPException: http_error,
        Exception: failure,
    }
    application = Starlette(routes=routes, exception_handlers=handlers)

    async def secured(scope, receive, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
            await send(message)

        await application(scope, receive, sending if scope["type"] == "http" else send)

    return secured


def _principal(console: Console, viewer: Viewer):
    return console.exchange.principals.get(viewer.id, viewer.role)


def _facet_query(q: str, chosen: dict, facet: str, value: str) -> str:
    params = {"q": q, **chosen, facet: value}
    return urllib.parse.urlencode({k: v for k, v in params.items() if v})


def _fmt(value) -> str:
    """A cell as a steward reads it: numbers rounded, empty shown as —, timestamps to the second."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)
