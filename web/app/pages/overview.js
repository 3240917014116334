import { h } from "../dom.js";

export class OverviewPage {
  mount(root) {
    this.el = h("section", { className: "page" }, h("h1", {}, "overview"), h("p", {}, "Coming next."));
    root.append(this.el);
  }

  unmount() {
    this.el?.remove();
  }
}
