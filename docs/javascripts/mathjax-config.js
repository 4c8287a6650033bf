/* MathJax 3 set-up for the mxopt guide.
 *
 * MathJax itself is served by the site (vendor/mathjax, copied by the build
 * from the installed django-static-mathjax package: tools/mathjax_files.py),
 * so formulas render without any network.
 *
 * Two kinds of pages carry math:
 *  - Markdown pages: pymdownx.arithmatex (generic mode) wraps each formula in
 *    an element of class "arithmatex", as \( ... \) or \[ ... \];
 *  - notebook pages (mkdocs-jupyter): Markdown cells, Markdown/LaTeX outputs
 *    and HTML outputs hold raw $...$, $$...$$, \(...\), \[...\] and
 *    \begin{env}...\end{env}, as in Jupyter.
 * Headings with math also appear in the table of contents (.md-nav--secondary).
 * Rather than letting MathJax scan the whole page (which would also turn a
 * stray dollar sign in ordinary prose into math), we typeset exactly those
 * elements.  <pre>, <code>, <script> ... are skipped by MathJax anyway, so a
 * "$" in code or in printed output stays as it is.  Put class
 * "mathjax_ignore" on an element to keep MathJax away from it.
 */
(function () {
  "use strict";

  var MATH_SELECTOR = [
    ".arithmatex",
    ".jupyter-wrapper .jp-RenderedMarkdown",
    ".jupyter-wrapper .jp-RenderedLatex",
    ".jupyter-wrapper .jp-RenderedHTML",
    ".md-nav--secondary",
  ].join(", ");

  // The page content already handed to MathJax (document$ and startup may
  // both ask for the same page).
  var scheduled = typeof WeakSet === "function" ? new WeakSet() : null;

  function typesetPage() {
    var MJ = window.MathJax;
    if (!MJ || typeof MJ.typesetPromise !== "function") {
      return; // not started yet: startup.ready() below calls us again
    }
    var content = document.querySelector(".md-content") || document.body;
    if (scheduled && content) {
      if (scheduled.has(content)) {
        return;
      }
      scheduled.add(content);
    }
    var root = document.documentElement;
    root.setAttribute("data-mxopt-math", "pending");
    MJ.startup.promise = MJ.startup.promise
      .then(function () {
        var nodes = Array.prototype.slice.call(document.querySelectorAll(MATH_SELECTOR));
        MJ.typesetClear();
        MJ.texReset();
        return nodes.length ? MJ.typesetPromise(nodes) : null;
      })
      .then(
        function () {
          root.setAttribute("data-mxopt-math", "done");
        },
        function (err) {
          root.setAttribute("data-mxopt-math", "error");
          console.error("MathJax typesetting failed:", err);
        }
      );
  }

  window.MathJax = {
    tex: {
      inlineMath: [["$", "$"], ["\\(", "\\)"]],
      displayMath: [["$$", "$$"], ["\\[", "\\]"]],
      processEscapes: true,
      processEnvironments: true,
      tags: "ams",
      // An undefined macro is an error (shown, and caught by the site test)
      // rather than silently printed in red.
      packages: { "[-]": ["noundefined"] },
    },
    options: {
      ignoreHtmlClass: "tex2jax_ignore|mathjax_ignore",
      processHtmlClass: "tex2jax_process|mathjax_process|arithmatex",
    },
    startup: {
      typeset: false,
      ready: function () {
        window.MathJax.startup.defaultReady();
        typesetPage();
      },
    },
  };

  // mkdocs-material announces every page it shows (including pages reached
  // by instant navigation, should it be enabled) through document$.
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(typesetPage);
  } else {
    document.addEventListener("DOMContentLoaded", typesetPage);
  }
})();
