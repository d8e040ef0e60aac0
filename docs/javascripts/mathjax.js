// MathJax 3 for the equations that pymdownx.arithmatex (generic mode) wraps in \( \) and \[ \].
// The MathJax files themselves are copied into the site by docs/hooks/offline_mathjax.py.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "none"  // (1.1) and the like are written with \tag
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|md-ellipsis"  // also a heading's maths in the table of contents
  }
};

// Every page is a full load (mkdocs.yml leaves out navigation.instant), so MathJax typesets it at startup.
