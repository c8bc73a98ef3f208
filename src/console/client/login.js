// Sign-in island: a console link carries its token in the URL fragment (never sent to a server or
// kept in history); take it from there, forget the fragment, and submit the sign-in form.
(() => {
  const fromFragment = () => {
    const m = location.hash.match(/^#token=([A-Za-z0-9_\-.=]+)$/);
    const form = document.getElementById("login");
    const field = document.getElementById("token");
    if (!m || !form || !field) return;
    history.replaceState(null, "", location.pathname);
    field.value = m[1];
    form.submit();
  };
  window.addEventListener("hashchange", fromFragment);
  fromFragment();
})();
