// Buzzgate's only script (docs/pages.md): progressive enhancement, the pages work without it.
// The app form's "Permission preset" select and its Read/Write/Delete grid are kept in step:
// choosing a preset ticks its boxes; ticking a box makes the preset "Custom".
(function () {
  'use strict';
  var select = document.getElementById('preset');
  if (!select) return;
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-scope]'));
  function apply() {
    var option = select.options[select.selectedIndex];
    var names = option && option.getAttribute('data-scopes');
    if (names === null || names === undefined) return; // Custom: leave the boxes alone
    var wanted = names.split(' ');
    boxes.forEach(function (box) {
      if (box.disabled) return; // always granted
      box.checked = wanted.indexOf(box.getAttribute('data-scope')) !== -1;
    });
  }
  select.addEventListener('change', apply);
  boxes.forEach(function (box) {
    box.addEventListener('change', function () { select.value = 'Custom'; });
  });
})();
