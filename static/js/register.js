/* Sign-up: the time zone menu starts at the browser's own zone, under today's name
 * (browsers still report some zones by old names, such as Asia/Calcutta for Asia/Kolkata;
 * the menu's data-aliases maps them). Without this file the newcomer picks the zone. */
(() => {
  "use strict";

  const select = document.querySelector("select[name=timezone][data-aliases]");
  if (!select || select.value) return; // a zone sent back with the form's errors stays
  let aliases = {};
  try {
    aliases = JSON.parse(select.dataset.aliases);
  } catch (error) {
    aliases = {};
  }
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const name = aliases[browserZone] || browserZone;
  if ([...select.options].some((option) => option.value === name)) select.value = name;
})();
