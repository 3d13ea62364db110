"""What the browser tests do on an admin page, in one place. Every click that loads a new page
waits for the old page to go: reading right after the click could read the old page, or an element
of it that goes stale in the middle of the read (a failure seen only on a loaded machine)."""
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait


def click_through(browser, element):
    """Click a link or a submit button and wait until the next page has replaced this one."""
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 10).until(EC.staleness_of(old))


def click_link(browser, label):
    click_through(browser, browser.find_element(By.LINK_TEXT, label))


def click_id(browser, element_id):
    click_through(browser, browser.find_element(By.ID, element_id))


def text(browser):
    return browser.find_element(By.TAG_NAME, "body").text


def messages(browser):
    """The page's Django messages, "" when it has none."""
    found = browser.find_elements(By.CSS_SELECTOR, "ul.messagelist")
    return found[0].text if found else ""


def row_of(browser, order_id):
    for row in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"):
        if order_id in row.text:
            return row
    raise AssertionError(f"no row for {order_id} in:\n{text(browser)}")


def run_action(browser, order_id, label):
    """Tick the row of `order_id` on a change list, run the admin action `label`, return the message."""
    row_of(browser, order_id).find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text(label)
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "button[name=index], input[name=index]"))
    return messages(browser)
