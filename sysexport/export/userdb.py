"""Users and groups of the source root (its /etc/passwd and /etc/group), the owner
rewriting rules, and the minimal passwd, group and shadow files of an export.

Nothing is looked up on the host: a name means what the *source root's* files say.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import ExportError
from .root import SourceRoot


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str

    def line(self) -> str:
        return f"{self.name}:{self.password}:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    password: str
    gid: int
    members: tuple[str, ...]

    def line(self) -> str:
        return f"{self.name}:{self.password}:{self.gid}:{','.join(self.members)}"


def _number(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value <= 0xFFFFFFFF else None


class UserDB:
    """The users and groups of a source root, read once when first needed."""

    def __init__(self, root: SourceRoot) -> None:
        self.root = root
        self._users: list[User] | None = None
        self._groups: list[Group] | None = None
        self._shadow: dict[str, str] | None = None

    @property
    def users(self) -> list[User]:
        if self._users is None:
            self._users = []
            for line in (self.root.read_text("/etc/passwd") or "").splitlines():
                f = line.split(":")
                if len(f) < 7 or not f[0] or f[0].startswith(("#", "+", "-")):
                    continue
                uid, gid = _number(f[2]), _number(f[3])
                if uid is None or gid is None:
                    continue
                self._users.append(User(f[0], f[1], uid, gid, f[4], f[5], ":".join(f[6:])))
        return self._users

    @property
    def groups(self) -> list[Group]:
        if self._groups is None:
            self._groups = []
            for line in (self.root.read_text("/etc/group") or "").splitlines():
                f = line.split(":")
                if len(f) < 4 or not f[0] or f[0].startswith(("#", "+", "-")):
                    continue
                gid = _number(f[2])
                if gid is None:
                    continue
                members = tuple(m for m in f[3].split(",") if m)
                self._groups.append(Group(f[0], f[1], gid, members))
        return self._groups

    def shadow_line(self, name: str) -> str | None:
        if self._shadow is None:
            self._shadow = {}
            for line in (self.root.read_text("/etc/shadow") or "").splitlines():
                user = line.split(":", 1)[0]
                if user and user not in self._shadow:
                    self._shadow[user] = line
        return self._shadow.get(name)

    def user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)

    def user_by_uid(self, uid: int) -> User | None:
        return next((u for u in self.users if u.uid == uid), None)

    def group_by_name(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    def group_by_gid(self, gid: int) -> Group | None:
        return next((g for g in self.groups if g.gid == gid), None)

    def uid(self, who: int | str, what: str) -> int:
        """A user given by number or name (a name via the source root's /etc/passwd)."""
        if isinstance(who, int) and not isinstance(who, bool):
            if not 0 <= who <= 0xFFFFFFFF:
                raise ExportError(f"{what}: uid {who} is outside 0..4294967295", path="/etc/passwd", rule="user")
            return who
        if isinstance(who, str):
            if who.isdigit():
                return self.uid(int(who), what)
            user = self.user_by_name(who)
            if user is None:
                raise ExportError(f"{what}: no user {who!r} in the source root's /etc/passwd "
                                  f"({self.root.host('/etc/passwd')}); give a number", path="/etc/passwd", rule="user")
            return user.uid
        raise ExportError(f"{what}: a user is a name or a number, found {who!r}", path="/etc/passwd", rule="user")

    def gid(self, who: int | str, what: str) -> int:
        """A group given by number or name (a name via the source root's /etc/group)."""
        if isinstance(who, int) and not isinstance(who, bool):
            if not 0 <= who <= 0xFFFFFFFF:
                raise ExportError(f"{what}: gid {who} is outside 0..4294967295", path="/etc/group", rule="group")
            return who
        if isinstance(who, str):
            if who.isdigit():
                return self.gid(int(who), what)
            group = self.group_by_name(who)
            if group is None:
                raise ExportError(f"{what}: no group {who!r} in the source root's /etc/group "
                                  f"({self.root.host('/etc/group')}); give a number", path="/etc/group", rule="group")
            return group.gid
        raise ExportError(f"{what}: a group is a name or a number, found {who!r}", path="/etc/group", rule="group")

    # ------------------------------------------------------------------ the minimal files

    def minimal_files(self, uids: set[int], gids: set[int], uid_map: dict[int, int], gid_map: dict[int, int],
                      *, shadow_from_source: bool = False) -> tuple[str, str, str, list[str]]:
        """(passwd, group, shadow, notes) for the exported ``uids`` and ``gids`` (numbers in
        the export, after rewriting).

        A user's line is the source root's line of that uid; where a rule moved a source
        user to a number the source has no user of, that user's line with the new number.
        The primary groups of the users are included.  Shadow entries are locked ("*")
        unless ``shadow_from_source`` copies the source's lines."""
        notes: list[str] = []
        users: list[User] = []
        for uid in sorted(uids):
            user = self.user_by_uid(uid)
            if user is None:
                moved = [src for src, dst in sorted(uid_map.items()) if dst == uid]
                source = next((u for src in moved for u in self.users if u.uid == src), None)
                if source is not None:
                    user = replace(source, uid=uid, gid=gid_map.get(source.gid, source.gid))
            if user is None:
                notes.append(f"uid {uid}: no user of that number in the source root's /etc/passwd; not listed")
                continue
            users.append(user)
        names = {u.name for u in users}
        want_gids = set(gids) | {u.gid for u in users}
        groups: list[Group] = []
        for gid in sorted(want_gids):
            group = self.group_by_gid(gid)
            if group is None:
                moved = [src for src, dst in sorted(gid_map.items()) if dst == gid]
                source_g = next((g for src in moved for g in self.groups if g.gid == src), None)
                if source_g is not None:
                    group = replace(source_g, gid=gid)
            if group is None:
                notes.append(f"gid {gid}: no group of that number in the source root's /etc/group; not listed")
                continue
            groups.append(replace(group, members=tuple(m for m in group.members if m in names)))
        passwd = "".join(u.line() + "\n" for u in users)
        group_text = "".join(g.line() + "\n" for g in groups)
        shadow_lines = []
        for u in users:
            line = self.shadow_line(u.name) if shadow_from_source else None
            shadow_lines.append(line if line is not None else f"{u.name}:*:::::::")
        shadow = "".join(s + "\n" for s in shadow_lines)
        return passwd, group_text, shadow, notes


__all__ = ["UserDB", "User", "Group"]
